//! A new connection's HTTP phase: read the request head under a deadline and
//! a size bound, route it before reading any body, then either answer and
//! close or hand over to the WebSocket loop.
//!
//! Runtime layer: imports the core, the balancer, [`super::ws::adopt`],
//! [`super::sys`], the TLS state of [`super::tls_link`] and the protocol
//! crate's head parser. It runs as a monoio task per accepted connection,
//! for the length of the HTTP phase only.
//!
//! On a TLS listener the TLS handshake comes first (after a PROXY header,
//! which a proxy sends before it), under the same deadline as the head;
//! the head, the body and the answer then pass through the connection's
//! [`TlsLink`], which goes with the socket to the reactor on an upgrade.
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

use super::app::{App, Decision, Peer, Route};
use super::balance::Handoff;
use super::core::Core;
use super::pre_auth::PreAuthRefusal;
use super::stats::bump;
use super::sys;
use super::tls_link::{TlsFailure, TlsLink};
use super::ws::adopt;
use crate::proto::forwarded::{canonical, client_from_chain, ForwardedError};
use crate::proto::http::{parse_head, HeadLimits, HttpError, Request, Response};
use crate::proto::permessage_deflate::{negotiate, Agreement};
use crate::proto::proxy::{self, Detect};

/// How long an answered connection is drained before it is dropped.
const LINGER: Duration = Duration::from_millis(500);

/// The accepted socket as the HTTP phase reads and writes it: plain, or
/// through TLS.
struct Channel<'a> {
    stream: &'a TcpStream,
    tls: Option<Box<TlsLink>>,
    /// Ciphertext read and not yet given to TLS (a read's worth).
    cipher: Vec<u8>,
}

/// Why no request head was read.
enum HeadError {
    /// The peer went away (or the socket failed) before a whole head.
    Closed,
    /// The head broke a rule.
    Http(HttpError),
    /// Refused for another reason (a PROXY header), with this answer.
    Respond(Response),
}

/// What an upgrade hands on: `Sec-WebSocket-Accept`, the handler, bytes
/// read after the head, and permessage-deflate if agreed.
type Upgraded<H> = (String, H, Vec<u8>, Option<Agreement>);

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
    tls: bool,
) {
    let tls = match (tls, &core.settings.tls) {
        (true, Some(t)) => match TlsLink::new(t.server_config.clone()) {
            Ok(link) => Some(Box::new(link)),
            Err(e) => {
                log::warn!("worker {}: cannot start TLS: {e}", core.id);
                return;
            }
        },
        _ => None,
    };
    let mut ch = Channel {
        stream: &stream,
        tls,
        cipher: Vec::new(),
    };
    let upgrade = Box::pin(http_phase(&core, &mut ch, peer)).await;
    let tls = ch.tls.take();
    if let Some((accept, handler, leftover, deflate)) = upgrade {
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
                    tls,
                    deflate,
                };
                match core.balancer.place(core.id, conn) {
                    Some(h) => adopt(&core, h),
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
    ch: &mut Channel<'_>,
    peer: SocketAddr,
) -> Option<Upgraded<A::Handler>> {
    let _ = ch.stream.set_nodelay(true);
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
            if ch.tls.is_some() {
                // No handshake is spent on a connection refused for having
                // too many in progress (the cap exists to bound them), and
                // a plain answer would be noise to a TLS client: closed.
                return None;
            }
            respond(core, ch, resp.with_header("Retry-After", "1")).await;
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
    let proxy = monoio::time::timeout(timeout, read_proxy(ch.stream, trusted)).await;
    let (proxied, raw) = match proxy {
        Ok(Ok(got)) => got,
        Ok(Err(e)) => {
            ch.tls = None;
            return refuse_head(core, ch, peer, e).await;
        }
        Err(_) => {
            ch.tls = None;
            return timed_out(core, ch).await;
        }
    };
    let start = if ch.tls.is_some() {
        match monoio::time::timeout(left(), handshake(ch, raw)).await {
            Ok(Ok(early)) => {
                bump(&core.stats().tls_handshakes);
                early
            }
            Ok(Err(why)) => return tls_failed(core, ch, peer, why).await,
            Err(_) => return tls_failed(core, ch, peer, TlsFailure::Timeout).await,
        }
    } else {
        raw
    };
    let head = monoio::time::timeout(left(), read_head(ch, start, &limits)).await;
    let (req, rest) = match head {
        Ok(Ok(got)) => got,
        Ok(Err(e)) => return refuse_head(core, ch, peer, e).await,
        Err(_) => return timed_out(core, ch).await,
    };
    let addr = match client_address(core, peer, proxied, &req) {
        Ok(c) => c,
        Err(e) => {
            let resp = Response::error(400, "bad_forwarded_for", &e.to_string());
            return refuse_head(core, ch, peer, HeadError::Respond(resp)).await;
        }
    };
    if core.draining.get() {
        let resp = Response::error(503, "shutting_down", "server is restarting; retry shortly")
            .with_header("Retry-After", "1");
        respond(core, ch, resp).await;
        return None;
    }
    let client = Peer {
        addr,
        cert_name: ch.tls.as_ref().and_then(|t| t.client_name()),
    };
    let max_body = core.settings.max_body_bytes;
    match core.app.route_head(&req, &client) {
        Decision::Now(Route::Respond(resp)) => {
            if resp.status >= 400 {
                bump(&core.stats().refused);
            }
            respond(core, ch, resp).await;
            None
        }
        Decision::Now(Route::Upgrade { accept, handler }) => {
            // An announced body (unusual on an upgrade) is read and dropped.
            let read = monoio::time::timeout(left(), read_body(ch, &req, max_body, rest));
            match read.await {
                Ok(Ok((_, leftover))) => {
                    Some((accept, handler, leftover, deflate_agreement(core, &req)))
                }
                Ok(Err(e)) => refuse_head(core, ch, addr, e).await,
                Err(_) => timed_out(core, ch).await,
            }
        }
        Decision::ReadBody { max } => {
            let max = max.min(max_body);
            let read = monoio::time::timeout(left(), read_body(ch, &req, max, rest));
            let (body, leftover) = match read.await {
                Ok(Ok(got)) => got,
                Ok(Err(e)) => return refuse_head(core, ch, addr, e).await,
                Err(_) => return timed_out(core, ch).await,
            };
            match core.app.route(&req, body, &client).await {
                Route::Respond(resp) => {
                    if resp.status >= 400 {
                        bump(&core.stats().refused);
                    }
                    respond(core, ch, resp).await;
                    None
                }
                Route::Upgrade { accept, handler } => {
                    Some((accept, handler, leftover, deflate_agreement(core, &req)))
                }
            }
        }
    }
}

/// permessage-deflate for an upgrade, when the server offers it
/// (`compression.enabled`) and the request's offers allow it; declined
/// offers are logged (the connection goes on without the extension).
fn deflate_agreement<A: App>(core: &Core<A>, req: &Request) -> Option<Agreement> {
    if !core.settings.deflate {
        return None;
    }
    let negotiation = negotiate(req.headers_named("sec-websocket-extensions"));
    for why in &negotiation.declined {
        log::debug!(
            "worker {}: permessage-deflate offer declined: {why}",
            core.id
        );
    }
    negotiation.agreed
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
    ch: &mut Channel<'_>,
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
    respond(core, ch, resp).await;
    None
}

/// Answers a request that did not arrive within the handshake timeout.
async fn timed_out<A: App, T>(core: &Core<A>, ch: &mut Channel<'_>) -> Option<T> {
    bump(&core.stats().refused);
    let msg = "request not received within the handshake timeout";
    respond(core, ch, Response::error(408, "request_timeout", msg)).await;
    None
}

/// Counts a failed TLS handshake and ends the connection: plain HTTP on
/// the TLS port gets a plain 400 saying so; a handshake cut at the
/// deadline is closed (its alert, if rustls made one, was already sent).
async fn tls_failed<A: App, T>(
    core: &Core<A>,
    ch: &mut Channel<'_>,
    who: SocketAddr,
    why: TlsFailure,
) -> Option<T> {
    core.stats().tls_failed(why);
    log::debug!("{who}: TLS handshake failed: {why:?}");
    ch.tls = None;
    if why == TlsFailure::PlainHttp {
        bump(&core.stats().refused);
        let msg = "this port speaks TLS: connect with wss:// or https://";
        respond(core, ch, Response::error(400, "tls_required", msg)).await;
    }
    None
}

/// Reads a PROXY header if one comes (only from a trusted peer: from
/// another it is a 400); returns the client it named (if any) and the
/// bytes read after it (the start of the head, or of the TLS handshake).
async fn read_proxy(
    stream: &TcpStream,
    trusted: bool,
) -> Result<(Option<SocketAddr>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        match proxy::detect(&buf) {
            Detect::Absent => return Ok((None, buf)),
            Detect::NeedMore => recv_raw(stream, &mut buf).await?,
            Detect::Present if !trusted => {
                return Err(HeadError::Respond(Response::error(
                    400,
                    "proxy_header_refused",
                    "a PROXY protocol header is accepted only from server.trusted_proxies",
                )))
            }
            Detect::Present => match proxy::parse(&buf) {
                Ok(Some((header, len))) => {
                    buf.drain(..len);
                    return Ok((header.source, buf));
                }
                Ok(None) => recv_raw(stream, &mut buf).await?,
                Err(e) => {
                    let resp = Response::error(400, "bad_proxy_header", &e.to_string());
                    return Err(HeadError::Respond(resp));
                }
            },
        }
    }
}

/// Whether the first bytes of a connection to a TLS listener are a plain
/// HTTP request (a TLS record starts with its content type, 22).
fn looks_like_http(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(u8::is_ascii_uppercase)
}

/// Runs the TLS handshake from `raw` (bytes already read) on; returns the
/// plaintext that came with the client's last flight (the start of its
/// request).
async fn handshake(ch: &mut Channel<'_>, raw: Vec<u8>) -> Result<Vec<u8>, TlsFailure> {
    let mut early = Vec::new();
    ch.cipher = raw;
    let mut first = true;
    loop {
        let link = ch.tls.as_mut().expect("a TLS channel");
        if !link.is_handshaking() {
            return Ok(early);
        }
        if ch.cipher.is_empty() {
            recv_raw(ch.stream, &mut ch.cipher)
                .await
                .map_err(|_| TlsFailure::Closed)?;
        }
        if std::mem::take(&mut first) && looks_like_http(&ch.cipher) {
            return Err(TlsFailure::PlainHttp);
        }
        open_read(ch.stream, link, &mut ch.cipher, &mut early).await?;
        if link.peer_closed() {
            return Err(TlsFailure::Closed);
        }
    }
}

/// Gives the ciphertext read (`cipher`, emptied) to `link`: what it
/// decrypts to `plain`, and what TLS answers (handshake messages, an
/// alert on an error) sent at once.
async fn open_read(
    stream: &TcpStream,
    link: &mut TlsLink,
    cipher: &mut Vec<u8>,
    plain: &mut Vec<u8>,
) -> Result<(), TlsFailure> {
    let mut out = Vec::new();
    let got = link.receive(cipher, plain, &mut out);
    cipher.clear();
    if !out.is_empty() && send_raw(stream, &out).await.is_err() {
        return Err(TlsFailure::Closed);
    }
    got.map_err(|e| TlsFailure::of(&e))
}

/// Reads a request head, starting with `buf` (bytes already read);
/// returns it and the bytes read after it.
async fn read_head(
    ch: &mut Channel<'_>,
    mut buf: Vec<u8>,
    limits: &HeadLimits,
) -> Result<(Request, Vec<u8>), HeadError> {
    buf.reserve(1024);
    let (req, head_len) = loop {
        if let Some(got) = parse_head(&buf, limits).map_err(HeadError::Http)? {
            break got;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(limits.max_head_bytes));
        }
        recv_some(ch, &mut buf).await?;
    };
    Ok((req, buf.split_off(head_len)))
}

/// Reads the body `req` announces (at most `max`: a larger one is a 413
/// before any of it is read) after the `rest` already read; returns it and
/// any bytes after it (the first WebSocket frames, for an upgrade).
async fn read_body(
    ch: &mut Channel<'_>,
    req: &Request,
    max: usize,
    mut rest: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let body_len = req.body_length(max).map_err(HeadError::Http)?;
    rest.reserve(body_len.saturating_sub(rest.len()));
    while rest.len() < body_len {
        recv_some(ch, &mut rest).await?;
    }
    let leftover = rest.split_off(body_len);
    Ok((rest, leftover))
}

/// Receives at least one byte of plaintext into `buf`: from the socket,
/// or through TLS (which may take several reads for one record, and
/// answers what the client's records ask for).
async fn recv_some(ch: &mut Channel<'_>, buf: &mut Vec<u8>) -> Result<(), HeadError> {
    let Some(link) = ch.tls.as_mut() else {
        return recv_raw(ch.stream, buf).await;
    };
    let before = buf.len();
    while buf.len() == before {
        ch.cipher.clear();
        recv_raw(ch.stream, &mut ch.cipher).await?;
        let got = open_read(ch.stream, link, &mut ch.cipher, buf).await;
        if got.is_err() || (buf.len() == before && link.peer_closed()) {
            return Err(HeadError::Closed);
        }
    }
    Ok(())
}

/// Receives at least one byte from the socket into the spare capacity of
/// `buf`.
async fn recv_raw(stream: &TcpStream, buf: &mut Vec<u8>) -> Result<(), HeadError> {
    let fd = stream.as_raw_fd();
    if buf.len() == buf.capacity() {
        buf.reserve(4096);
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

/// Writes `resp` (through TLS, followed by close_notify, on a TLS
/// channel), half-closes, drains briefly, and lets the socket go.
async fn respond<A: App>(core: &Core<A>, ch: &mut Channel<'_>, resp: Response) {
    let mut bytes = resp.to_bytes(false);
    if let Some(link) = ch.tls.as_mut() {
        match seal_all(link, &bytes) {
            Some(mut sealed) => {
                link.close_notify(&mut sealed);
                bytes = sealed;
            }
            None => return,
        }
    }
    let sent = monoio::time::timeout(
        core.settings.limits.write_timeout(),
        send_raw(ch.stream, &bytes),
    )
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    sys::shutdown(ch.stream.as_raw_fd(), libc::SHUT_WR);
    let _ = monoio::time::timeout(LINGER, drain(ch.stream)).await;
}

/// `plain` sealed into TLS records (`None` once the connection cannot
/// send).
fn seal_all(link: &mut TlsLink, plain: &[u8]) -> Option<Vec<u8>> {
    let mut sealed = Vec::new();
    link.seal_to_vec(plain, &mut sealed).ok()?;
    Some(sealed)
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

/// Sends all of `bytes` on the socket, waiting for writability as needed.
async fn send_raw(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
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
