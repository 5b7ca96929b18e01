//! One core's shared state, and the table of what the reactor keeps for
//! each upgraded connection.
//!
//! Runtime layer: imports the connection registry, the balancer, the
//! counters, the epoll set of [`super::sys`] and the [`App`] contract; none
//! of the files that run the core (worker, reactor, janitor, ws, http)
//! are imported here, they all import this.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use super::app::{App, Settings};
use super::balance::Balancer;
use super::pre_auth::PreAuth;
use super::registry::Registry;
use super::stats::{CoreStats, Stats};
use super::sys::EpollSet;
use super::tls_link::TlsLink;
use crate::proto::deflate::Inflater;
use crate::proto::SessionConfig;

/// Bytes of the per-core receive buffer every connection reads into.
const READ_BUF_BYTES: usize = 64 * 1024;

/// What the reactor keeps for one connection beside its [`super::Conn`]:
/// its socket, its application handler, and whether input may be waiting
/// that no readiness event will announce again.
pub(super) struct Slot<H> {
    pub(super) fd: OwnedFd,
    pub(super) handler: H,
    /// The socket may hold input not yet read (the read budget ran out, or
    /// reading is paused behind a full send queue): with edge-triggered
    /// readiness, no new event will say so.
    pub(super) read_pending: bool,
    /// The connection's TLS state, on wss.
    pub(super) tls: Option<Box<TlsLink>>,
}

impl<H> Slot<H> {
    pub(super) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A core's shared state, one per worker thread.
pub(super) struct Core<A: App> {
    pub(super) id: usize,
    pub(super) app: Rc<A>,
    pub(super) settings: Arc<Settings>,
    /// The limits every connection's protocol session is held to.
    pub(super) session: SessionConfig,
    pub(super) stats: Arc<Stats>,
    pub(super) registry: Registry,
    /// The upgraded connections' sockets, watched by the reactor.
    pub(super) epoll: EpollSet,
    /// The reactor's side of each connection, by slot (taken out while a
    /// connection is being handled). Held inline: a table grows by
    /// doubling, but capacity never written is never backed by memory.
    slots: RefCell<Vec<Option<Slot<A::Handler>>>>,
    /// The receive buffer shared by every connection of this core.
    pub(super) read_buf: RefCell<Box<[u8]>>,
    /// What TLS connections' reads decrypt to (a read's worth, reused).
    pub(super) plain_buf: RefCell<Vec<u8>>,
    /// Inflates the compressed messages of every permessage-deflate
    /// connection of this core, one at a time (no context takeover).
    pub(super) inflater: RefCell<Inflater>,
    /// Shutting down: no new upgrades.
    pub(super) draining: Cell<bool>,
    /// Where upgraded connections go when another core has fewer.
    pub(super) balancer: Arc<Balancer<A::Handler>>,
    /// The cap on connections in their HTTP phase, shared by every core.
    pub(super) pre_auth: Arc<PreAuth>,
}

/// Milliseconds of a limit, for the session's 32-bit timers.
fn ms(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl<A: App> Core<A> {
    pub(super) fn new(
        id: usize,
        app: Rc<A>,
        settings: Arc<Settings>,
        stats: Arc<Stats>,
        balancer: Arc<Balancer<A::Handler>>,
        pre_auth: Arc<PreAuth>,
    ) -> std::io::Result<Core<A>> {
        let limits = &settings.limits;
        let session = SessionConfig {
            max_message: settings.max_message_bytes,
            ping_after_ms: ms(limits.ping_interval()),
            idle_after_ms: ms(limits.idle_timeout()),
            close_timeout_ms: ms(limits.close_timeout()),
        };
        Ok(Core {
            id,
            app,
            session,
            settings,
            stats,
            registry: Registry::default(),
            epoll: EpollSet::new()?,
            slots: RefCell::default(),
            read_buf: RefCell::new(vec![0u8; READ_BUF_BYTES].into_boxed_slice()),
            plain_buf: RefCell::new(Vec::new()),
            inflater: RefCell::new(Inflater::new()),
            draining: Cell::new(false),
            balancer,
            pre_auth,
        })
    }

    pub(super) fn stats(&self) -> &CoreStats {
        &self.stats.cores[self.id]
    }

    pub(super) fn set_slot(&self, slot: u32, state: Slot<A::Handler>) {
        let mut slots = self.slots.borrow_mut();
        let i = slot as usize;
        if slots.len() <= i {
            slots.resize_with(i + 1, || None);
        }
        slots[i] = Some(state);
    }

    pub(super) fn take_slot(&self, slot: u32) -> Option<Slot<A::Handler>> {
        self.slots.borrow_mut().get_mut(slot as usize)?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection holds one slot inline in its core's table: the
    /// socket, the handler, a flag and the pointer to its TLS state (null
    /// on plain ws), nothing more.
    #[test]
    fn a_slot_is_its_handler_plus_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Slot<[usize; 3]>>(), 24 + 16);
    }
}
