//! The state of one WebSocket connection that the application, the janitor
//! and the reactor share: its send queue, its protocol session, its write
//! timer; and the core's ready list, on which a connection with work for
//! the reactor is put.
//!
//! Runtime layer: imports the outbox, the clock, [`super::sys`] and the
//! protocol crate's [`Session`], which decides every protocol question
//! (open or closing, what to answer, when a deadline has passed). A
//! [`Conn`] is shared (by `Rc`, inside one core) between the core's
//! reactor, its janitor and the application (which queues frames and asks
//! for closes); only the reactor does I/O. The session and the queue sit
//! behind one `RefCell`, borrowed only for the length of one call and never
//! across a call into the application.
//!
//! An idle connection's memory is mostly this struct, so it is kept to
//! mimalloc's 112-byte class with its `Rc` counts: the ready list is the
//! core's (one per thread, not a pointer per connection), and times are
//! 32-bit millisecond stamps.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::task::Waker;

use bytes::Bytes;

use super::clock::{now_s, stamp, Stamp};
use super::outbox::{Flush, Outbox};
use super::stats::WriteHistogram;
use super::sys;
use super::tls_link::TlsLink;
use crate::proto::{CloseCode, Session, SessionConfig, Timeout};

/// Connections with work for the reactor, by slot, and the reactor's waker.
pub(super) struct ReadyList {
    slots: RefCell<Vec<u32>>,
    waker: Cell<Option<Waker>>,
}

thread_local! {
    /// The ready list of the core running on this thread.
    static READY: ReadyList = const {
        ReadyList {
            slots: RefCell::new(Vec::new()),
            waker: Cell::new(None),
        }
    };
}

impl ReadyList {
    /// Runs `f` on this core's ready list.
    pub(super) fn with<R>(f: impl FnOnce(&ReadyList) -> R) -> R {
        READY.with(f)
    }

    /// Adds a slot and wakes the reactor (callers push a slot once until
    /// the reactor takes it: see `Conn::wake`).
    fn push(&self, slot: u32) {
        self.slots.borrow_mut().push(slot);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.borrow().is_empty()
    }

    /// Moves the slots into `into` (emptied first), keeping both buffers.
    pub(super) fn take_into(&self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(&mut *self.slots.borrow_mut(), into);
    }

    pub(super) fn register(&self, waker: &Waker) {
        let w = self.waker.take();
        match w {
            Some(w) if w.will_wake(waker) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(waker.clone())),
        }
    }
}

/// What travels on the connection: the frames not yet written and the
/// protocol state that decides what may still be sent.
#[derive(Debug)]
struct Wire {
    out: Outbox,
    session: Session,
}

/// A connection as seen by the application and the janitor.
pub struct Conn {
    fd: RawFd,
    wire: RefCell<Wire>,
    /// Already on the ready list.
    marked: Cell<bool>,
    /// Given up on (by the janitor) or finished: the reactor drops it.
    dead: Cell<bool>,
    /// The application wanted no input when the reactor would have read.
    held: Cell<bool>,
    /// When the connection was opened, in seconds on the core clock.
    opened_s: u32,
    /// While the socket is full: when it last accepted bytes (0 when it is
    /// not full).
    blocked_since: Cell<Stamp>,
    /// Index in the core's registry.
    slot: Cell<u32>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("fd", &self.fd)
            .field("phase", &self.wire.borrow().session.phase())
            .finish()
    }
}

impl Conn {
    pub(super) fn new(fd: RawFd) -> Conn {
        Conn {
            fd,
            wire: RefCell::new(Wire {
                out: Outbox::default(),
                session: Session::new(stamp()),
            }),
            marked: Cell::new(false),
            dead: Cell::new(false),
            held: Cell::new(false),
            opened_s: now_s(),
            blocked_since: Cell::new(0),
            slot: Cell::new(u32::MAX),
        }
    }

    /// Queues a frame (a complete, pre-serialized WebSocket frame) unless the
    /// connection is closing.
    pub fn send(&self, frame: Bytes) {
        self.send_tagged(frame, 0);
    }

    /// Queues a frame tagged with the event's sequence number, so that a
    /// slow-consumer close can say which event was the last one sent.
    pub fn send_tagged(&self, frame: Bytes, seq: u64) {
        let mut wire = self.wire.borrow_mut();
        if self.dead.get() || !wire.session.is_open() {
            return;
        }
        wire.out.push_tagged(frame, seq);
        drop(wire);
        self.wake();
    }

    /// The sequence number of the last tagged frame sent (or being sent).
    pub fn last_sent_seq(&self) -> u64 {
        self.wire.borrow().out.last_sent_tag()
    }

    /// This connection's slot on its core: stable while it lives, dense, and
    /// reused after it closes (an index for per-core tables).
    pub fn slot_index(&self) -> usize {
        self.slot.get() as usize
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.wire.borrow().out.queued_bytes()
    }

    /// Starts the close handshake after everything already queued.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let mut wire = self.wire.borrow_mut();
        if let Some(frame) = wire.session.close(code, reason, stamp()) {
            wire.out.push(frame);
            drop(wire);
            self.wake();
        }
    }

    /// Drops everything not yet started and closes at once (a slow
    /// consumer: waiting behind its backlog is what it cannot do). `reason`
    /// is given the sequence number of the last event sent.
    pub fn close_now(&self, code: CloseCode, reason: impl FnOnce(u64) -> String) {
        if !self.is_open() {
            return;
        }
        let last = {
            let mut wire = self.wire.borrow_mut();
            wire.out.drop_unsent();
            wire.out.last_sent_tag()
        };
        self.close(code, &reason(last));
    }

    /// Sends a ping now, to learn whether the peer is still there: any
    /// bytes from it afterwards (see [`Conn::ping_answered`]) say it is.
    pub fn ping(&self) {
        if let Some(frame) = self.session(Session::ping) {
            self.push_control(frame);
        }
    }

    /// Whether bytes came from the peer since the last ping (see
    /// [`Conn::ping`]).
    pub fn ping_answered(&self) -> bool {
        !self.session(|s| s.awaits_answer())
    }

    /// Gives up on a peer that does not answer: the socket is shut at once,
    /// without a closing handshake (it would not be answered).
    pub fn abort(&self) {
        self.kill();
    }

    /// Open for messages: no close started and not given up on.
    pub fn is_open(&self) -> bool {
        !self.dead.get() && self.wire.borrow().session.is_open()
    }

    /// Seconds on the core clock when the connection opened.
    pub fn opened_at_s(&self) -> u32 {
        self.opened_s
    }

    /// Runs `f` on the protocol session (which must not call back into this
    /// connection).
    /// Whether this connection takes permessage-deflate compressed frames
    /// made with the full window (see [`Session::takes_compressed`]).
    pub fn takes_compressed(&self) -> bool {
        self.wire.borrow().session.takes_compressed()
    }

    pub(super) fn session<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        f(&mut self.wire.borrow_mut().session)
    }

    /// Whether the transport should be closed now (see
    /// [`Session::is_done`]).
    pub(super) fn is_done(&self) -> bool {
        let wire = self.wire.borrow();
        self.dead.get() || wire.session.is_done(!wire.out.is_empty())
    }

    /// Acts on a passed deadline of the session: queues its ping or idle
    /// close; says whether the connection timed out (idle, or a closing
    /// handshake given up).
    pub(super) fn on_timeout(&self, config: &SessionConfig, now: Stamp) -> bool {
        let timeout = self.session(|s| s.on_timeout(config, now));
        match timeout {
            Timeout::None => false,
            Timeout::Ping(frame) => {
                self.push_control(frame);
                false
            }
            Timeout::Idle(frame) => {
                self.push_control(frame);
                true
            }
            Timeout::GiveUp => {
                self.kill();
                true
            }
        }
    }

    pub(super) fn slot(&self) -> u32 {
        self.slot.get()
    }

    pub(super) fn set_slot(&self, slot: u32) {
        self.slot.set(slot);
    }

    pub(super) fn has_output(&self) -> bool {
        !self.wire.borrow().out.is_empty()
    }

    /// The last write found the socket full (and no write since succeeded):
    /// writing again only makes sense once the socket says it is writable.
    pub(super) fn write_blocked(&self) -> bool {
        self.blocked_since.get() != 0
    }

    /// Writes what the socket takes (each write counted in `writes`);
    /// records since when it has taken
    /// nothing: the write timeout measures a socket that accepts no bytes,
    /// not one that accepts them slowly (a slow link receiving a burst).
    /// On wss the frames are sealed into TLS records by `tls` first.
    pub(super) fn flush(
        &self,
        writes: &WriteHistogram,
        tls: Option<&mut TlsLink>,
    ) -> std::io::Result<Flush> {
        let (r, progressed) = {
            let mut wire = self.wire.borrow_mut();
            let before = wire.out.queued_bytes();
            let r = match tls {
                Some(tls) => wire.out.flush_sealed(self.fd, writes, tls)?,
                None => wire.out.flush(self.fd, writes)?,
            };
            (r, wire.out.queued_bytes() < before)
        };
        match r {
            Flush::Done => self.blocked_since.set(0),
            Flush::Blocked if progressed || self.blocked_since.get() == 0 => {
                self.blocked_since.set(stamp().max(1))
            }
            Flush::Blocked => {}
        }
        Ok(r)
    }

    /// Queues TLS records made outside a flush (rustls's answer to a
    /// client's key update) ahead of every frame not yet sealed.
    pub(super) fn push_sealed(&self, records: Bytes) {
        self.wire.borrow_mut().out.push_sealed(records);
        self.wake();
    }

    /// Queues a frame even while closing (pongs, close replies, the
    /// session's own frames) and marks the connection ready.
    pub(super) fn push_control(&self, frame: Bytes) {
        self.wire.borrow_mut().out.push(frame);
        self.wake();
    }

    pub(super) fn blocked_since(&self) -> Stamp {
        self.blocked_since.get()
    }

    pub(super) fn is_dead(&self) -> bool {
        self.dead.get()
    }

    /// Gives up on the connection: the reactor finishes it, and the
    /// socket is shut so that nothing more is read or written.
    pub(super) fn kill(&self) {
        if self.dead.replace(true) {
            return;
        }
        // The fd stays open until the reactor has removed the connection.
        sys::shutdown(self.fd, libc::SHUT_RDWR);
        self.wake();
    }

    /// The reactor is done with the connection: nothing more is queued
    /// and what was is dropped (the application may still hold it).
    pub(super) fn retire(&self) {
        self.dead.set(true);
        self.wire.borrow_mut().out = Outbox::default();
    }

    /// Reading waits for the application (see `App::may_read`).
    pub(super) fn hold(&self) {
        self.held.set(true);
    }

    /// Whether reading was waiting for the application (and no longer is
    /// marked so).
    pub(super) fn take_held(&self) -> bool {
        self.held.replace(false)
    }

    /// Taken off the ready list by the reactor.
    pub(super) fn unmark(&self) {
        self.marked.set(false);
    }

    /// Puts the connection on its core's ready list (once).
    pub(super) fn wake(&self) {
        if !self.marked.replace(true) {
            ReadyList::with(|r| r.push(self.slot.get()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Rc<Conn>` is the connection's one heap object: two counts and
    /// the struct, which must fit mimalloc's 112-byte size class (the next
    /// class, 128 bytes, adds 16 bytes to every idle connection).
    #[test]
    fn a_connection_fits_the_112_byte_allocation_class() {
        assert!(std::mem::size_of::<Conn>() + 2 * std::mem::size_of::<usize>() <= 112);
    }

    #[test]
    fn ready_list_hands_over_every_pushed_slot_once_per_wake() {
        let (a, b) = (Conn::new(-1), Conn::new(-1));
        a.set_slot(3);
        b.set_slot(1);
        a.wake();
        b.wake();
        a.wake();
        let mut got = vec![99];
        ReadyList::with(|r| r.take_into(&mut got));
        assert_eq!(got, vec![3, 1]);
        assert!(ReadyList::with(ReadyList::is_empty));
    }

    #[test]
    fn a_closing_connection_refuses_data_but_sends_its_close_first() {
        let c = Conn::new(-1);
        c.send(Bytes::from_static(b"a"));
        c.close(CloseCode::NORMAL, "bye");
        assert!(!c.is_open());
        let queued = c.queued_bytes();
        c.send(Bytes::from_static(b"refused"));
        assert_eq!(c.queued_bytes(), queued);
        c.close(CloseCode::GOING_AWAY, "second close is ignored");
        assert_eq!(c.queued_bytes(), queued);
    }
}
