//! The cap on connections still in their HTTP phase: accepted, their
//! request head not yet answered or upgraded, so not yet authenticated.
//! One table for every core (touched once when a connection is accepted and
//! once when its HTTP phase ends, never per event).
//!
//! Per peer address and in total: a client that opens connections and
//! sends nothing holds each one until the handshake timeout, and without a
//! cap could hold as many as the descriptor limit. Peers that are trusted
//! proxies carry many clients, so they count only toward the total.
//!
//! Runtime layer, a leaf (std only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PreAuthRefusal {
    /// The address has its share of connections in their HTTP phase.
    PerIp,
    /// The server has its share.
    Total,
}

#[derive(Debug)]
pub(super) struct PreAuth {
    per_ip: u32,
    total: u32,
    table: Mutex<(u32, HashMap<IpAddr, u32>)>,
}

/// A connection's place, given back when it is dropped.
#[derive(Debug)]
pub(super) struct PreAuthSlot {
    owner: Arc<PreAuth>,
    /// `None` for a trusted proxy (counted in the total only).
    ip: Option<IpAddr>,
}

impl PreAuth {
    pub(super) fn new(per_ip: u32, total: u32) -> PreAuth {
        PreAuth {
            per_ip,
            total,
            table: Mutex::new((0, HashMap::new())),
        }
    }

    /// Admits a connection from `ip` (`None`: a trusted proxy).
    pub(super) fn admit(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
    ) -> Result<PreAuthSlot, PreAuthRefusal> {
        let mut guard = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let (total, table) = &mut *guard;
        if *total >= self.total {
            return Err(PreAuthRefusal::Total);
        }
        if let Some(ip) = ip {
            let n = table.entry(ip).or_insert(0);
            if *n >= self.per_ip {
                return Err(PreAuthRefusal::PerIp);
            }
            *n += 1;
        }
        *total += 1;
        Ok(PreAuthSlot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for PreAuthSlot {
    fn drop(&mut self) {
        let mut guard = self.owner.table.lock().unwrap_or_else(|e| e.into_inner());
        let (total, table) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = table.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    table.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, n]))
    }

    #[test]
    fn per_address_then_total_and_places_come_back() {
        let p = Arc::new(PreAuth::new(2, 3));
        let a = p.admit(ip(1)).unwrap();
        let _b = p.admit(ip(1)).unwrap();
        assert_eq!(p.admit(ip(1)).unwrap_err(), PreAuthRefusal::PerIp);
        let _c = p.admit(ip(2)).unwrap();
        assert_eq!(p.admit(ip(3)).unwrap_err(), PreAuthRefusal::Total);
        drop(a);
        let _d = p.admit(None).unwrap();
        assert_eq!(p.admit(None).unwrap_err(), PreAuthRefusal::Total);
        assert_eq!(p.table.lock().unwrap().1.get(&ip(1).unwrap()), Some(&1));
    }
}
