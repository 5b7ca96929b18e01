//! One WebSocket connection's steps: adopting it, handling what its socket
//! reported (recv -> session -> queue -> flush), and finishing it. The
//! core's reactor calls these; nothing here waits.
//!
//! Runtime layer: imports the core, the connection, [`super::sys`] and the
//! protocol session. Every protocol decision (what a frame means, what to
//! answer, when the closing handshake is over) is the session's; this file
//! moves bytes between the socket, the session, the application and the
//! send queue. Reading receives into the core's shared buffer and decodes
//! in place; only a frame or message left unfinished at the end of a read
//! is kept, by the session, until the next read.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::Bytes;

use super::app::App;
use super::balance::Handoff;
use super::clock::stamp;
use super::conn::Conn;
use super::core::{Core, Slot};
use super::stats::{bump, drop_one};
use super::sys::{self, Readiness};
use crate::proto::handshake::switching_protocols;
use crate::proto::Received;

/// Reads taken in a row before other connections get a turn.
const READS_PER_WAKE: usize = 4;

/// Whether the connection goes on after some input.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Finished,
}

/// Hands an upgraded connection to the core's reactor: it gets its send
/// buffer size (`limits.socket_send_buffer_bytes`, which bounds what a
/// reader that stalls pins in the kernel), its slot, its 101 response and
/// `on_open`, its first input (`leftover`, read with the request), and its
/// place in the epoll set.
pub(super) fn adopt<A: App>(core: &Core<A>, conn: Handoff<A::Handler>) {
    let Handoff {
        fd,
        accept,
        mut handler,
        leftover,
        tls,
        deflate,
    } = conn;
    let sndbuf = core.settings.limits.socket_send_buffer_bytes;
    if sndbuf > 0 {
        if let Err(e) = socket2::SockRef::from(&fd).set_send_buffer_size(sndbuf) {
            log::debug!("worker {}: SO_SNDBUF {sndbuf}: {e}", core.id);
        }
    }
    let conn = Rc::new(Conn::new(fd.as_raw_fd()));
    core.registry.insert(conn.clone());
    let extensions = deflate.map(|agreed| {
        conn.session(|s| s.enable_deflate(agreed.server_window));
        agreed.response()
    });
    conn.push_control(Bytes::from(switching_protocols(
        &accept,
        extensions.as_deref(),
    )));
    bump(&core.stats().upgraded);
    bump(&core.stats().open);
    core.app.on_open(&mut handler, &conn);
    let mut slot = Slot {
        fd,
        handler,
        read_pending: false,
        tls,
    };
    let mut alive = true;
    if !leftover.is_empty() {
        let mut first = leftover;
        alive = input(core, &conn, &mut slot, &mut first) == Flow::Continue;
    }
    if let Err(e) = core.epoll.add(slot.fd(), conn.slot()) {
        log::warn!("worker {}: cannot watch a connection: {e}", core.id);
        alive = false;
    }
    if !alive {
        finish(core, &conn, slot);
        return;
    }
    core.set_slot(conn.slot(), slot);
    conn.wake();
}

/// Handles what the socket of `slot` reported, or the work queued for it;
/// finishes the connection when it is over.
pub(super) fn step<A: App>(core: &Core<A>, slot: u32, io: Readiness) {
    let Some(conn) = core.registry.get(slot) else {
        return;
    };
    let Some(mut state) = core.take_slot(slot) else {
        return;
    };
    conn.unmark();
    if advance(core, &conn, &mut state, io) == Flow::Continue {
        core.set_slot(slot, state);
    } else {
        finish(core, &conn, state);
    }
}

/// Ends a connection: the handler closes, the slot is freed, the socket
/// closed (dropping `state` closes it, which also takes it out of the
/// epoll set). A TLS connection whose records all went out says
/// close_notify first (one try: the socket is closed either way).
fn finish<A: App>(core: &Core<A>, conn: &Rc<Conn>, mut state: Slot<A::Handler>) {
    if !conn.is_dead() && !conn.has_output() {
        send_close_notify(&mut state);
    }
    core.app.on_close(&mut state.handler, conn);
    conn.retire();
    core.registry.remove(conn);
    drop_one(&core.stats().open);
}

/// Reads if there is input and reading is allowed, then writes what is
/// queued if the socket may take it.
fn advance<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    state: &mut Slot<A::Handler>,
    io: Readiness,
) -> Flow {
    if conn.is_dead() {
        return Flow::Finished;
    }
    if io.read {
        state.read_pending = true;
    }
    if state.read_pending && may_read(core, conn, &state.handler) {
        state.read_pending = false;
        if on_readable(core, conn, state) == Flow::Finished {
            return Flow::Finished;
        }
    }
    if conn.has_output() && (io.write || !conn.write_blocked()) {
        if conn
            .flush(&core.stats().writes, state.tls.as_deref_mut())
            .is_err()
        {
            return Flow::Finished;
        }
        if conn.is_open() && conn.queued_bytes() < core.settings.limits.send_queue_bytes / 2 {
            core.app.on_drained(&mut state.handler, conn);
        }
        if state.read_pending && may_read(core, conn, &state.handler) {
            // The queue drained below the bound: read what waited.
            conn.wake();
        }
    }
    if !conn.has_output() && conn.session(|s| s.should_half_close()) {
        half_close(conn, state);
    }
    if conn.is_done() {
        return Flow::Finished;
    }
    Flow::Continue
}

/// On wss, one try at sending close_notify (the socket is shut or closed
/// right after, either way).
fn send_close_notify<H>(state: &mut Slot<H>) {
    if let Some(tls) = state.tls.as_mut() {
        let mut alert = Vec::new();
        tls.close_notify(&mut alert);
        let _ = sys::send(state.fd(), &alert);
    }
}

/// A connection being failed has written its close frame: its sending
/// side is shut (after close_notify on wss), so the peer sees the end and
/// closes; its end of the stream then finishes the connection.
fn half_close<H>(conn: &Conn, state: &mut Slot<H>) {
    send_close_notify(state);
    sys::shutdown(state.fd(), libc::SHUT_WR);
    conn.session(|s| s.half_closed());
}

/// Reading pauses when the session wants no more input, while so much is
/// queued that a client sending without reading could grow its queue
/// without bound, and while the application wants none (then the janitor
/// asks again on its next tick).
fn may_read<A: App>(core: &Core<A>, conn: &Conn, handler: &A::Handler) -> bool {
    if !core.app.may_read(handler) {
        conn.hold();
        return false;
    }
    conn.session(|s| s.may_read()) && conn.queued_bytes() < core.settings.limits.send_queue_bytes
}

/// Takes what the socket has, a few reads at most, and decodes it; stops
/// as soon as the send queue passes its bound (what was read and not yet
/// decoded waits in the session), so that a client that sends without
/// reading pins at most the bound plus one read.
fn on_readable<A: App>(core: &Core<A>, conn: &Rc<Conn>, state: &mut Slot<A::Handler>) -> Flow {
    if conn.session(|s| s.has_kept_input()) {
        if input(core, conn, state, &mut []) == Flow::Finished {
            return Flow::Finished;
        }
        if !may_read(core, conn, &state.handler) {
            state.read_pending = true;
            return Flow::Continue;
        }
    }
    let mut buf = core.read_buf.borrow_mut();
    for _ in 0..READS_PER_WAKE {
        match sys::recv(state.fd(), &mut buf) {
            Ok(0) => return Flow::Finished,
            Ok(n) => {
                let flow = if state.tls.is_some() {
                    tls_input(core, conn, state, &mut buf[..n])
                } else {
                    input(core, conn, state, &mut buf[..n])
                };
                if flow == Flow::Finished {
                    return Flow::Finished;
                }
                if !may_read(core, conn, &state.handler) {
                    // Paused: the socket may hold more, and no readiness
                    // event will say so.
                    state.read_pending = true;
                    return Flow::Continue;
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
    state.read_pending = true;
    conn.wake();
    Flow::Continue
}

/// Opens one read's TLS records and runs their plaintext through
/// [`input`]; what TLS answers (a key update) is queued ahead of any
/// frame not yet sealed. A TLS error ends the connection after its alert;
/// the client's close_notify ends its input, as the end of the stream
/// does on plain ws.
fn tls_input<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    state: &mut Slot<A::Handler>,
    cipher: &mut [u8],
) -> Flow {
    let tls = state.tls.as_mut().expect("a TLS connection");
    let mut plain = core.plain_buf.borrow_mut();
    plain.clear();
    let mut answer = Vec::new();
    let got = tls.receive(cipher, &mut plain, &mut answer);
    let closed = tls.peer_closed();
    if !answer.is_empty() {
        conn.push_sealed(Bytes::from(answer));
    }
    if let Err(e) = got {
        bump(&core.stats().protocol_errors);
        log::debug!("worker {}: TLS error: {e}", core.id);
        let _ = conn.flush(&core.stats().writes, state.tls.as_deref_mut());
        return Flow::Finished;
    }
    if !plain.is_empty() && input(core, conn, state, &mut plain) == Flow::Finished {
        return Flow::Finished;
    }
    if closed {
        return Flow::Finished;
    }
    Flow::Continue
}

/// Runs one read's bytes through the session: messages to the
/// application, replies and closes to the queue; then tells the
/// application the read is over. Stops early once reading should pause
/// (the session keeps the rest).
fn input<A: App>(
    core: &Core<A>,
    conn: &Rc<Conn>,
    state: &mut Slot<A::Handler>,
    fresh: &mut [u8],
) -> Flow {
    let now = stamp();
    let mut input = conn.session(|s| s.input(&core.session, fresh, now));
    let mut flow = Flow::Continue;
    let mut inflater = core.inflater.borrow_mut();
    loop {
        match conn.session(|s| s.next(&mut input, now, &mut inflater)) {
            Received::End => break,
            Received::Nothing => {}
            Received::Message(kind, payload) => {
                core.app.on_message(&mut state.handler, kind, payload, conn);
                // The application wants no more for now (a publisher whose
                // events wait): the rest of this read stays in the session.
                if !core.app.may_read(&state.handler) {
                    break;
                }
            }
            Received::Reply(frame) => conn.push_control(frame),
            Received::Violation(close, e) => {
                bump(&core.stats().protocol_errors);
                log::debug!("worker {}: protocol error: {e}", core.id);
                conn.push_control(close);
            }
            Received::Finished => {
                flow = Flow::Finished;
                break;
            }
        }
    }
    drop(inflater);
    conn.session(|s| s.keep(input));
    core.app.on_input_end(&mut state.handler, conn);
    flow
}
