//! The liveness probe behind the one-connection-per-IP rule.
//!
//! A client whose network dropped silently leaves a connection the hub
//! still counts, and every reconnect from its address would get 409 until
//! the idle timeout (about a minute) ends it. So when an attempt is refused
//! with 409, the address's open connections are probed: each is pinged at
//! once, and one from which no bytes arrive within `hub.conflict_probe_ms`
//! is taken for dead and closed (without a closing handshake, which it
//! would not answer). A live client answers the ping and keeps its place;
//! the refused one retries after `Retry-After` and, if the old connection
//! was dead, gets in.
//!
//! Layer: hub. Imports only the runtime's [`Conn`]; a core keeps one
//! [`Probes`] and checks it on each tick (there are usually none).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::runtime::Conn;

/// A connection being probed.
struct Probe {
    conn: Rc<Conn>,
    started: Instant,
}

/// The probes of one core.
#[derive(Default)]
pub struct Probes {
    pending: RefCell<Vec<Probe>>,
}

impl Probes {
    /// Pings `conn` unless it is being probed already; returns whether a
    /// probe started.
    pub fn start(&self, conn: Rc<Conn>) -> bool {
        let mut pending = self.pending.borrow_mut();
        if !conn.is_open() || pending.iter().any(|p| Rc::ptr_eq(&p.conn, &conn)) {
            return false;
        }
        conn.ping();
        pending.push(Probe {
            conn,
            started: Instant::now(),
        });
        true
    }

    /// Ends the probes that got an answer (bytes since the ping) or whose
    /// connection is gone, and closes those that waited `within` for
    /// nothing; returns how many it closed.
    pub fn check(&self, within: Duration) -> u64 {
        let mut pending = self.pending.borrow_mut();
        let mut closed = 0;
        pending.retain(|p| {
            let waited = p.started.elapsed();
            if !p.conn.is_open() || p.conn.ping_answered() {
                return false;
            }
            if waited >= within {
                p.conn.abort();
                closed += 1;
                return false;
            }
            true
        });
        closed
    }

    pub fn is_empty(&self) -> bool {
        self.pending.borrow().is_empty()
    }
}
