//! Evening out upgraded connections across cores.
//!
//! Each core accepts on its own `SO_REUSEPORT` listener, and the kernel
//! picks the listener by a hash of the connection's addresses. Over a few
//! hundred connections that leaves one core with a fifth more than another
//! (100 subscribers split 57/43 or 62/38 in repeated runs here), and a
//! broadcast is only delivered when its busiest core is done. So once a
//! request is upgraded, a core that holds more open WebSocket connections
//! than the least loaded core (by more than one) hands the socket, with its
//! handler and whatever bytes followed the request, to that core, which
//! adopts it as if it had accepted it. Only the HTTP phase runs on the
//! accepting core; the handoff is one channel message per moved connection.
//!
//! The counts are read without coordination, so two cores may pick the same
//! target at once; connections on their way are counted as the target's
//! (`incoming`) so that such races overshoot by little.
//!
//! Runtime layer: imports only the counters ([`super::stats`]) and the TLS
//! state a connection carries ([`super::tls_link`]).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::stats::Stats;
use super::tls_link::TlsLink;
use crate::proto::permessage_deflate::Agreement;

/// An upgraded connection on its way to another core.
pub(crate) struct Handoff<H> {
    pub fd: OwnedFd,
    /// `Sec-WebSocket-Accept` for the 101 the adopting core sends.
    pub accept: String,
    pub handler: H,
    /// Bytes read after the request head (plaintext, over TLS).
    pub leftover: Vec<u8>,
    /// The connection's TLS state, on a wss connection.
    pub tls: Option<Box<TlsLink>>,
    /// permessage-deflate, when the handshake agreed it.
    pub deflate: Option<Agreement>,
}

/// Where each core's connections are and how to send one to a core.
pub(crate) struct Balancer<H> {
    inboxes: Vec<flume::Sender<Handoff<H>>>,
    incoming: Vec<AtomicU64>,
    stats: Arc<Stats>,
    enabled: bool,
}

impl<H> Balancer<H> {
    /// A balancer for `stats.cores.len()` cores and their inboxes; when not
    /// `enabled` (or with one core), every connection stays where it was
    /// accepted.
    pub(crate) fn new(
        stats: Arc<Stats>,
        enabled: bool,
    ) -> (Balancer<H>, Vec<flume::Receiver<Handoff<H>>>) {
        let (inboxes, receivers) = (0..stats.cores.len()).map(|_| flume::unbounded()).unzip();
        let incoming = (0..stats.cores.len()).map(|_| AtomicU64::new(0)).collect();
        let balancer = Balancer {
            inboxes,
            incoming,
            enabled: enabled && stats.cores.len() > 1,
            stats,
        };
        (balancer, receivers)
    }

    /// Sends `conn` to a less loaded core, or gives it back to be adopted
    /// on `here`.
    pub(crate) fn place(&self, here: usize, conn: Handoff<H>) -> Option<Handoff<H>> {
        if !self.enabled {
            return Some(conn);
        }
        let load: Vec<u64> = (0..self.inboxes.len())
            .map(|i| self.stats.cores[i].open.load(Relaxed) + self.incoming[i].load(Relaxed))
            .collect();
        let to = target(&load, here);
        if to == here {
            return Some(conn);
        }
        self.incoming[to].fetch_add(1, Relaxed);
        match self.inboxes[to].send(conn) {
            Ok(()) => None,
            Err(flume::SendError(conn)) => {
                self.incoming[to].fetch_sub(1, Relaxed);
                Some(conn)
            }
        }
    }

    /// A handed-off connection reached core `id` (and now counts as open
    /// there, or was dropped).
    pub(crate) fn arrived(&self, id: usize) {
        self.incoming[id].fetch_sub(1, Relaxed);
    }
}

/// The core a connection upgraded on `here` should live on, given each
/// core's load: the least loaded one if `here` has more than one more.
fn target(load: &[u64], here: usize) -> usize {
    let (least, min) = load
        .iter()
        .copied()
        .enumerate()
        .min_by_key(|&(_, n)| n)
        .unwrap_or((here, 0));
    if load.get(here).is_some_and(|&mine| mine > min + 1) {
        least
    } else {
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_stays_unless_another_core_has_two_fewer() {
        assert_eq!(target(&[5, 5], 0), 0);
        assert_eq!(target(&[6, 5], 0), 0, "one more is tolerated");
        assert_eq!(target(&[7, 5], 0), 1);
        assert_eq!(target(&[3, 9, 4, 1], 1), 3, "the least loaded core");
        assert_eq!(target(&[0], 0), 0);
    }

    fn handoff(n: u8) -> Handoff<u8> {
        Handoff {
            fd: std::fs::File::open("/dev/null").unwrap().into(),
            accept: String::new(),
            handler: n,
            leftover: Vec::new(),
            tls: None,
            deflate: None,
        }
    }

    #[test]
    fn moved_connections_count_for_their_target_until_they_arrive() {
        let stats = Arc::new(Stats::new(2, None));
        stats.cores[0].open.store(4, Relaxed);
        let (b, inboxes) = Balancer::new(stats, true);
        assert!(b.place(0, handoff(1)).is_none(), "4 vs 0: moved");
        assert!(
            b.place(0, handoff(2)).is_none(),
            "4 vs 1 (on its way): moved"
        );
        assert!(b.place(0, handoff(3)).is_none(), "4 vs 2: moved");
        assert_eq!(
            b.place(0, handoff(4)).map(|h| h.handler),
            Some(4),
            "4 vs 3: stays"
        );
        let moved: Vec<u8> = inboxes[1].try_iter().map(|h| h.handler).collect();
        assert_eq!(moved, [1, 2, 3]);
        for _ in 0..3 {
            b.arrived(1);
        }
        assert_eq!(b.incoming[1].load(Relaxed), 0);
    }

    #[test]
    fn disabled_keeps_every_connection_where_it_was_accepted() {
        let stats = Arc::new(Stats::new(2, None));
        stats.cores[0].open.store(100, Relaxed);
        let (b, _inboxes) = Balancer::new(stats, false);
        assert!(b.place(0, handoff(1)).is_some());
    }
}
