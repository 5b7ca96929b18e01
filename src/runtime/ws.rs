//! One WebSocket connection's steps: opening it, handling what its socket
//! reported, and finishing it. The core's reactor calls these; nothing here
//! waits.
//!
//! Reading receives into the core's shared buffer and decodes in place;
//! only a frame or message left unfinished at the end of a read is kept,
//! with its reader state, in a box the connection frees as soon as it
//! completes. So an idle connection owns no read buffer and no reader.
//!
//! Closing follows RFC 6455 section 7: a close frame from the peer is
//! answered with one carrying the same code, after which the server closes
//! the TCP connection; a close we start (protocol error, idle timeout,
//! shutdown) waits for the peer's close frame, bounded by the janitor's
//! close timeout. After a protocol error the rest of the input is discarded
//! and the reader starts over, so that the peer's close frame can still be
//! recognized.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use bytes::Bytes;

use super::clock::stamp;
use super::conn::{Conn, Phase};
use super::http::recv;
use super::reactor::Readiness;
use super::stats::{bump, drop_one};
use super::worker::Core;
use super::App;
use crate::proto::handshake::switching_protocols;
use crate::proto::{close_frame, frame, Decoded, Event, Opcode, ProtocolError, Reader, Role};

/// Reads taken in a row before other connections get a turn.
const READS_PER_WAKE: usize = 4;

/// Whether the connection goes on after some input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Finished,
}

/// A connection's state that only the reactor touches: its socket, its
/// reader and its application handler.
pub(crate) struct Session<H> {
    fd: OwnedFd,
    /// Input that spans reads; `None` between messages.
    partial: Option<Box<Partial>>,
    handler: H,
    /// The socket may hold input not yet read (the read budget ran out, or
    /// reading is paused behind a full send queue): with edge-triggered
    /// readiness, no new event will say so.
    read_pending: bool,
}

/// A frame or fragmented message that did not end with the read that
/// brought its start: the reader's state and the unfinished frame's bytes.
struct Partial {
    reader: Reader,
    bytes: Vec<u8>,
}

impl<H> Session<H> {
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Starts an upgraded connection: registers it, queues the 101 response and
/// lets the handler open.
pub(crate) fn open<A: App>(
    core: &Core<A>,
    fd: OwnedFd,
    accept: &str,
    mut handler: A::Handler,
) -> (Rc<Conn>, Session<A::Handler>) {
    let conn = Rc::new(Conn::new(fd.as_raw_fd(), core.ready.clone()));
    conn.push_control(Bytes::from(switching_protocols(accept)));
    core.registry.insert(conn.clone());
    bump(&core.stats().upgraded);
    bump(&core.stats().open);
    core.app.on_open(&mut handler, &conn);
    let session = Session {
        fd,
        partial: None,
        handler,
        read_pending: false,
    };
    (conn, session)
}

/// Handles what the socket of `slot` reported, or the work queued for it;
/// finishes the connection when it is over.
pub(crate) fn step<A: App>(core: &Core<A>, slot: u32, io: Readiness) {
    let Some(conn) = core.registry.get(slot) else {
        return;
    };
    let Some(mut session) = core.take_session(slot) else {
        return;
    };
    conn.unmark();
    if advance(core, &conn, &mut session, io) == Flow::Continue {
        core.set_session(slot, session);
    } else {
        finish(core, &conn, session);
    }
}

/// Ends a connection: the handler closes, the slot is freed, the socket
/// closed (which also takes it out of the epoll set).
pub(crate) fn finish<A: App>(core: &Core<A>, conn: &Rc<Conn>, mut session: Session<A::Handler>) {
    core.app.on_close(&mut session.handler, conn);
    conn.retire();
    core.registry.remove(conn);
    drop_one(&core.stats().open);
}

/// Decodes input that came with the request; false if that ended the
/// connection.
pub(crate) fn input_and_end<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    session: &mut Session<A::Handler>,
    bytes: &mut [u8],
) -> bool {
    let flow = input(core, conn, session, bytes);
    core.app.on_input_end(&mut session.handler, conn);
    flow == Flow::Continue
}

/// Reads if there is input and reading is allowed, then writes what is
/// queued if the socket may take it.
fn advance<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    session: &mut Session<A::Handler>,
    io: Readiness,
) -> Flow {
    if conn.is_dead() {
        return Flow::Finished;
    }
    if io.read {
        session.read_pending = true;
    }
    if session.read_pending && may_read(core, conn) {
        session.read_pending = false;
        if on_readable(core, conn, session) == Flow::Finished {
            return Flow::Finished;
        }
    }
    if conn.has_output() && (io.write || !conn.write_blocked()) {
        if conn.flush().is_err() {
            return Flow::Finished;
        }
        if session.read_pending && may_read(core, conn) {
            // The queue drained below the bound: read what waited.
            conn.wake();
        }
    }
    let replied = matches!(conn.phase(), Phase::ReplyQueued(_)) && !conn.has_output();
    if replied || conn.is_dead() {
        return Flow::Finished;
    }
    Flow::Continue
}

/// Reading pauses while the peer's close is being answered, and while so
/// much is queued that a client sending without reading could grow its
/// queue without bound.
fn may_read<A: App>(core: &Core<A>, conn: &Conn) -> bool {
    !matches!(conn.phase(), Phase::ReplyQueued(_))
        && conn.queued_bytes() < core.settings.limits.send_queue_bytes
}

/// Takes what the socket has, a few reads at most, and decodes it.
fn on_readable<A: App>(core: &Core<A>, conn: &Rc<Conn>, session: &mut Session<A::Handler>) -> Flow {
    let mut buf = core.read_buf.borrow_mut();
    for _ in 0..READS_PER_WAKE {
        match recv(session.fd(), &mut buf) {
            Ok(0) => return Flow::Finished,
            Ok(n) => {
                conn.touch();
                let flow = input(core, conn, session, &mut buf[..n]);
                core.app.on_input_end(&mut session.handler, conn);
                if flow == Flow::Finished {
                    return Flow::Finished;
                }
                if n < buf.len() {
                    return Flow::Continue;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Flow::Finished,
        }
    }
    // The budget ran out with the buffer full every time: more may wait.
    session.read_pending = true;
    conn.wake();
    Flow::Continue
}

/// Decodes `fresh` bytes, after any kept from before; keeps what is left
/// unfinished.
fn input<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    session: &mut Session<A::Handler>,
    fresh: &mut [u8],
) -> Flow {
    let handler = &mut session.handler;
    match session.partial.as_deref_mut() {
        Some(p) => {
            p.bytes.extend_from_slice(fresh);
            let (used, flow) = decode_all(core, conn, &mut p.reader, handler, &mut p.bytes);
            p.bytes.drain(..used);
            if p.bytes.is_empty() && p.reader.is_idle() {
                session.partial = None;
            }
            flow
        }
        None => {
            let mut reader = Reader::new(Role::Server, core.settings.max_message_bytes);
            let (used, flow) = decode_all(core, conn, &mut reader, handler, fresh);
            let rest = &fresh[used..];
            if !rest.is_empty() || !reader.is_idle() {
                session.partial = Some(Box::new(Partial {
                    reader,
                    bytes: rest.to_vec(),
                }));
            }
            flow
        }
    }
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
                            core.app.on_message(handler, kind, payload, conn);
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
                        conn.set_phase(Phase::ReplyQueued(stamp()));
                        return (buf.len(), Flow::Continue);
                    }
                }
            }
            Err(e) => return (buf.len(), fail(core, conn, reader, &e)),
        }
    }
}

/// A protocol violation: close with its code, or give up if already closing.
fn fail<A: App>(core: &Core<A>, conn: &Conn, reader: &mut Reader, e: &ProtocolError) -> Flow {
    if !conn.is_open() {
        return Flow::Finished;
    }
    bump(&core.stats().protocol_errors);
    conn.close(e.close_code(), &e.to_string());
    if e.is_in_close_frame() {
        // The peer already sent its close: ours ends the handshake.
        conn.set_phase(Phase::ReplyQueued(stamp()));
    }
    *reader = Reader::new(Role::Server, core.settings.max_message_bytes);
    Flow::Continue
}
