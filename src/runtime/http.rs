//! A new connection's HTTP phase: read the request head under a deadline and
//! a size bound, then either answer and close or hand over to the WebSocket
//! loop.
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
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpStream;

use super::app::{App, Route};
use super::balance::Handoff;
use super::core::Core;
use super::stats::bump;
use super::sys;
use super::ws::adopt;
use crate::proto::http::{parse_head, HeadLimits, HttpError, Request, Response};

/// How long an answered connection is drained before it is dropped.
const LINGER: Duration = Duration::from_millis(500);

/// Why no request head was read.
enum HeadError {
    /// The peer went away (or the socket failed) before a whole head.
    Closed,
    /// The head broke a rule.
    Http(HttpError),
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
async fn http_phase<A: App>(
    core: &Core<A>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Option<(String, A::Handler, Vec<u8>)> {
    let _ = stream.set_nodelay(true);
    let limits = HeadLimits {
        max_head_bytes: core.settings.limits.max_head_bytes,
        max_headers: core.settings.limits.max_headers,
    };
    let max_body = core.settings.max_body_bytes;
    let timeout = core.settings.limits.handshake_timeout();
    let request = monoio::time::timeout(timeout, read_request(stream, &limits, max_body)).await;
    let (req, body, leftover) = match request {
        Ok(Ok(got)) => got,
        Ok(Err(HeadError::Closed)) => return None,
        Ok(Err(HeadError::Http(e))) => {
            bump(&core.stats().refused);
            log::debug!("{peer}: bad request: {e}");
            respond(
                core,
                stream,
                Response::error(e.status(), e.code(), &e.to_string()),
            )
            .await;
            return None;
        }
        Err(_) => {
            bump(&core.stats().refused);
            let msg = "request not received within the handshake timeout";
            respond(core, stream, Response::error(408, "request_timeout", msg)).await;
            return None;
        }
    };
    if core.draining.get() {
        let resp = Response::error(503, "shutting_down", "server is restarting; retry shortly")
            .with_header("Retry-After", "1");
        respond(core, stream, resp).await;
        return None;
    }
    match core.app.route(&req, body, peer).await {
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

/// Reads a request head and its body; returns them and any bytes that came
/// after the body (the first WebSocket frames, for an upgrade).
async fn read_request(
    stream: &TcpStream,
    limits: &HeadLimits,
    max_body: usize,
) -> Result<(Request, Vec<u8>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let (req, head_len) = loop {
        if let Some(got) = parse_head(&buf, limits).map_err(HeadError::Http)? {
            break got;
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(limits.max_head_bytes));
        }
        recv_some(stream, &mut buf).await?;
    };
    let body_len = req.body_length(max_body).map_err(HeadError::Http)?;
    let mut rest = buf.split_off(head_len);
    rest.reserve(body_len.saturating_sub(rest.len()));
    while rest.len() < body_len {
        recv_some(stream, &mut rest).await?;
    }
    let leftover = rest.split_off(body_len);
    Ok((req, rest, leftover))
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
