//! The state of one WebSocket connection that outlives a single poll: its
//! send queue, its close phase and its timers.
//!
//! A [`Conn`] is shared (by `Rc`, inside one core) between the core's
//! reactor, the core's janitor (pings, idle and write timeouts) and the
//! application (which queues frames and asks for closes). Everyone else
//! only queues and marks the connection ready; the reactor alone does I/O.
//! Times are milliseconds on the core's clock, to keep the struct small: an
//! idle connection's memory is mostly this struct.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::Bytes;

use super::clock::{now_s, stamp, Stamp};
use super::outbox::{Flush, Outbox};
use super::reactor::ReadyList;
use crate::proto::{close_frame, CloseCode};

/// Where a connection is in the close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame at this time and wait for the peer's.
    CloseSent(Stamp),
    /// The peer closed first; our reply is queued, then the TCP close.
    ReplyQueued(Stamp),
}

/// A connection as seen by the application and the janitor.
pub struct Conn {
    fd: RawFd,
    out: RefCell<Outbox>,
    /// Where the connection goes when it has work for the reactor.
    ready: Rc<ReadyList>,
    /// Already on the ready list.
    marked: Cell<bool>,
    phase: Cell<Phase>,
    /// When the last bytes arrived from the peer.
    last_rx: Cell<Stamp>,
    /// When the connection was opened, in seconds on the core clock.
    opened_s: u32,
    /// A ping was sent and no bytes have arrived since.
    ping_outstanding: Cell<bool>,
    /// Since when the socket refuses bytes (0 when it does not).
    blocked_since: Cell<Stamp>,
    /// Given up on (by the janitor) or finished: the reactor drops it.
    dead: Cell<bool>,
    /// Index in the core's registry.
    slot: Cell<u32>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("fd", &self.fd)
            .field("phase", &self.phase.get())
            .finish()
    }
}

impl Conn {
    pub(crate) fn new(fd: RawFd, ready: Rc<ReadyList>) -> Conn {
        let now = stamp();
        Conn {
            fd,
            out: RefCell::new(Outbox::default()),
            ready,
            marked: Cell::new(false),
            phase: Cell::new(Phase::Open),
            last_rx: Cell::new(now),
            opened_s: now_s(),
            ping_outstanding: Cell::new(false),
            blocked_since: Cell::new(0),
            dead: Cell::new(false),
            slot: Cell::new(u32::MAX),
        }
    }

    /// Queues a frame (a complete, pre-serialized WebSocket frame) unless the
    /// connection is closing.
    pub fn send(&self, frame: Bytes) {
        if self.is_open() {
            self.out.borrow_mut().push(frame);
            self.wake();
        }
    }

    /// Queues a frame tagged with the event's sequence number, so that a
    /// slow-consumer close can say which event was the last one sent.
    pub fn send_tagged(&self, frame: Bytes, seq: u64) {
        if self.is_open() {
            self.out.borrow_mut().push_tagged(frame, seq);
            self.wake();
        }
    }

    /// The sequence number of the last tagged frame sent (or being sent).
    pub fn last_sent_seq(&self) -> u64 {
        self.out.borrow().last_sent_tag()
    }

    /// This connection's slot on its core: stable while it lives, dense, and
    /// reused after it closes (an index for per-core tables).
    pub fn slot_index(&self) -> usize {
        self.slot.get() as usize
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.out.borrow().queued_bytes()
    }

    /// Starts the close handshake after everything already queued.
    pub fn close(&self, code: CloseCode, reason: &str) {
        if self.phase.get() == Phase::Open {
            self.out.borrow_mut().push(close_frame(code, reason));
            self.phase.set(Phase::CloseSent(stamp()));
            self.wake();
        }
    }

    /// Drops everything not yet started and closes at once (a slow
    /// consumer: waiting behind its backlog is what it cannot do). `reason`
    /// is given the sequence number of the last event sent.
    pub fn close_now(&self, code: CloseCode, reason: impl FnOnce(u64) -> String) {
        if self.phase.get() == Phase::Open {
            self.out.borrow_mut().drop_unsent();
            let last = self.last_sent_seq();
            self.close(code, &reason(last));
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// Open for messages: no close started and not given up on.
    pub fn is_open(&self) -> bool {
        self.phase.get() == Phase::Open && !self.dead.get()
    }

    /// Seconds on the core clock when the connection opened.
    pub fn opened_at_s(&self) -> u32 {
        self.opened_s
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.set(phase);
    }

    pub(crate) fn slot(&self) -> u32 {
        self.slot.get()
    }

    pub(crate) fn set_slot(&self, slot: u32) {
        self.slot.set(slot);
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.out.borrow().is_empty()
    }

    /// The last write found the socket full (and no write since succeeded):
    /// writing again only makes sense once the socket says it is writable.
    pub(crate) fn write_blocked(&self) -> bool {
        self.blocked_since.get() != 0
    }

    /// Writes what the socket takes; records when it started refusing.
    pub(crate) fn flush(&self) -> std::io::Result<Flush> {
        let r = self.out.borrow_mut().flush(self.fd)?;
        match r {
            Flush::Done => self.blocked_since.set(0),
            Flush::Blocked if self.blocked_since.get() == 0 => {
                self.blocked_since.set(stamp().max(1))
            }
            Flush::Blocked => {}
        }
        Ok(r)
    }

    /// Queues a frame even while closing (pong and close replies).
    pub(crate) fn push_control(&self, frame: Bytes) {
        self.out.borrow_mut().push(frame);
    }

    pub(crate) fn touch(&self) {
        self.last_rx.set(stamp());
        self.ping_outstanding.set(false);
    }

    pub(crate) fn last_rx(&self) -> Stamp {
        self.last_rx.get()
    }

    pub(crate) fn ping_outstanding(&self) -> bool {
        self.ping_outstanding.get()
    }

    /// Queues a ping from the janitor and marks it outstanding.
    pub(crate) fn send_ping(&self, ping: Bytes) {
        self.ping_outstanding.set(true);
        self.push_control(ping);
        self.wake();
    }

    pub(crate) fn blocked_since(&self) -> Stamp {
        self.blocked_since.get()
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.get()
    }

    /// Gives up on the connection: the reactor finishes it, and the
    /// socket is shut so that nothing more is read or written.
    pub(crate) fn kill(&self) {
        if self.dead.replace(true) {
            return;
        }
        // SAFETY: shutdown on an fd this connection owns; it stays open
        // until the reactor has removed the connection.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
        self.wake();
    }

    /// The reactor is done with the connection: nothing more is queued
    /// and what was is dropped (the application may still hold it).
    pub(crate) fn retire(&self) {
        self.dead.set(true);
        self.out.replace(Outbox::default());
    }

    /// Taken off the ready list by the reactor.
    pub(crate) fn unmark(&self) {
        self.marked.set(false);
    }

    /// Puts the connection on its core's ready list (once).
    pub(crate) fn wake(&self) {
        if !self.marked.replace(true) {
            self.ready.push(self.slot.get());
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
}
