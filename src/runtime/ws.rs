//! A WebSocket connection's event loop: one task, woken by readability,
//! by writability when its socket was full, or by frames queued for it.
//!
//! Reading waits for readiness holding no buffer, then receives into the
//! core's shared buffer and decodes in place; only the bytes of an
//! unfinished frame are copied into the connection's own buffer, which is
//! freed again as soon as it empties. So an idle connection owns no read
//! buffer at all.
//!
//! Closing follows RFC 6455 section 7: a close frame from the peer is
//! answered with one carrying the same code, after which the server closes
//! the TCP connection; a close we start (protocol error, idle timeout,
//! shutdown) waits for the peer's close frame, bounded by the janitor's
//! close timeout. After a protocol error the rest of the input is discarded
//! and the reader starts over, so that the peer's close frame can still be
//! recognized.

use std::future::{poll_fn, Future};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;

use bytes::Bytes;
use monoio::net::TcpStream;

use super::clock::now_ms;
use super::conn::{Conn, Phase};
use super::http::recv;
use super::outbox::Flush;
use super::stats::{bump, drop_one};
use super::worker::Core;
use super::{App, Handler};
use crate::proto::handshake::switching_protocols;
use crate::proto::{close_frame, frame, Decoded, Event, Opcode, ProtocolError, Reader, Role};

/// Reads taken in a row before other connections get a turn.
const READS_PER_WAKE: usize = 4;

/// What woke the loop.
enum Wake {
    Readable,
    Writable,
    Output,
    Dead,
}

/// Whether the connection goes on after some input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Finished,
}

/// Per-connection read state kept by the task (not shared).
struct Session {
    reader: Reader,
    /// Bytes of an unfinished frame; empty (and unallocated) when idle.
    pending: Vec<u8>,
}

/// Runs an upgraded connection until it is closed.
pub(crate) async fn run<A: App>(
    core: Rc<Core<A>>,
    stream: TcpStream,
    accept: String,
    mut handler: A::Handler,
    leftover: Vec<u8>,
) {
    let conn = Rc::new(Conn::new(stream.as_raw_fd()));
    conn.push_control(Bytes::from(switching_protocols(&accept)));
    core.registry.insert(conn.clone());
    bump(&core.stats().upgraded);
    bump(&core.stats().open);
    handler.on_open(&conn);
    let mut session = Session {
        reader: Reader::new(Role::Server, core.settings.max_message_bytes),
        pending: Vec::new(),
    };
    let mut flow = Flow::Continue;
    if !leftover.is_empty() {
        let mut first = leftover;
        flow = input(&core, &conn, &mut session, &mut handler, &mut first);
        handler.on_input_end(&conn);
    }
    // Reading pauses while this much is queued, so that a client that sends
    // without reading cannot grow its queue without bound.
    let pause_reading_at = core.settings.limits.send_queue_bytes;
    let mut readable = pin!(stream.readable(false));
    let mut writable = pin!(Some(stream.writable(false)));
    writable.set(None);
    while flow == Flow::Continue {
        if writable.is_none() && conn.has_output() {
            match conn.flush() {
                Ok(Flush::Done) => {}
                Ok(Flush::Blocked) => writable.set(Some(stream.writable(false))),
                Err(_) => break,
            }
        }
        if conn.is_dead() {
            break;
        }
        if matches!(conn.phase(), Phase::ReplyQueued(_)) && !conn.has_output() {
            break;
        }
        let wake = poll_fn(|cx| {
            if conn.is_dead() {
                return Poll::Ready(Wake::Dead);
            }
            let write_ready = match writable.as_mut().as_pin_mut() {
                Some(w) => w.poll(cx).is_ready(),
                None => false,
            };
            if write_ready {
                return Poll::Ready(Wake::Writable);
            }
            if writable.is_none() && conn.has_output() {
                return Poll::Ready(Wake::Output);
            }
            let may_read = !matches!(conn.phase(), Phase::ReplyQueued(_))
                && conn.queued_bytes() < pause_reading_at;
            if may_read && readable.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Readable);
            }
            conn.register_waker(cx.waker());
            Poll::Pending
        })
        .await;
        match wake {
            Wake::Dead => break,
            Wake::Writable => writable.set(None),
            Wake::Output => {}
            Wake::Readable => {
                readable.set(stream.readable(false));
                flow = on_readable(&core, &conn, &mut session, &mut handler);
            }
        }
    }
    handler.on_close(&conn);
    core.registry.remove(&conn);
    drop_one(&core.stats().open);
}

/// Takes what the socket has, a few reads at most, and decodes it.
fn on_readable<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    session: &mut Session,
    handler: &mut A::Handler,
) -> Flow {
    let mut buf = core.read_buf.borrow_mut();
    for _ in 0..READS_PER_WAKE {
        match recv(conn.fd(), &mut buf) {
            Ok(0) => return Flow::Finished,
            Ok(n) => {
                conn.touch();
                let flow = input(core, conn, session, handler, &mut buf[..n]);
                handler.on_input_end(conn);
                if flow == Flow::Finished {
                    return Flow::Finished;
                }
                if n < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Flow::Finished,
        }
    }
    Flow::Continue
}

/// Decodes `fresh` bytes, after any kept from before; keeps the tail of an
/// unfinished frame.
fn input<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    session: &mut Session,
    handler: &mut A::Handler,
    fresh: &mut [u8],
) -> Flow {
    let flow;
    if session.pending.is_empty() {
        let (used, f) = decode_all(core, conn, &mut session.reader, handler, fresh);
        session.pending.extend_from_slice(&fresh[used..]);
        flow = f;
    } else {
        let mut pending = std::mem::take(&mut session.pending);
        pending.extend_from_slice(fresh);
        let (used, f) = decode_all(core, conn, &mut session.reader, handler, &mut pending);
        pending.drain(..used);
        session.pending = pending;
        flow = f;
    }
    if session.pending.is_empty() && session.pending.capacity() > 0 {
        session.pending = Vec::new();
    }
    flow
}

/// Decodes every complete frame at the front of `buf`; returns the bytes
/// used.
fn decode_all<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    reader: &mut Reader,
    handler: &mut A::Handler,
    buf: &mut [u8],
) -> (usize, Flow) {
    let mut used = 0;
    loop {
        let decoded = reader.decode(&mut buf[used..]);
        match decoded {
            Ok(Decoded::NeedMore) => return (used, Flow::Continue),
            Ok(Decoded::Consumed(n)) => used += n,
            Ok(Decoded::Event(n, event)) => {
                used += n;
                match event {
                    Event::Message(kind, payload) => {
                        if conn.is_open() {
                            handler.on_message(kind, payload, conn);
                        }
                    }
                    Event::Ping(payload) => {
                        if conn.is_open() {
                            conn.push_control(frame(Opcode::Pong, payload));
                        }
                    }
                    Event::Pong(_) => {}
                    Event::Close(close) => {
                        if !conn.is_open() {
                            // The answer to our close: the handshake is done.
                            return (buf.len(), Flow::Finished);
                        }
                        let reply = match close {
                            Some((code, _)) => close_frame(code, ""),
                            None => frame(Opcode::Close, b""),
                        };
                        conn.push_control(reply);
                        conn.set_phase(Phase::ReplyQueued(now_ms()));
                        return (buf.len(), Flow::Continue);
                    }
                }
            }
            Err(e) => return (buf.len(), fail(core, conn, reader, &e)),
        }
    }
}

/// A protocol violation: close with its code, or give up if already closing.
fn fail<A>(core: &Core<A>, conn: &Conn, reader: &mut Reader, e: &ProtocolError) -> Flow {
    if !conn.is_open() {
        return Flow::Finished;
    }
    bump(&core.stats().protocol_errors);
    conn.close(e.close_code(), &e.to_string());
    if e.is_in_close_frame() {
        // The peer already sent its close: ours ends the handshake.
        conn.set_phase(Phase::ReplyQueued(now_ms()));
    }
    *reader = Reader::new(Role::Server, core.settings.max_message_bytes);
    Flow::Continue
}
